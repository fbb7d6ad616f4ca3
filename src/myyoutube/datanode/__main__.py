from myyoutube.datanode.main import main

main()
