from myyoutube.web.main import main

main()
