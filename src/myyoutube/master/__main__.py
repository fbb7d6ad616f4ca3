from myyoutube.master.main import main

main()
