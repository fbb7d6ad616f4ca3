from myyoutube.web.main import main

# Guarded: a media worker (media_processes.py, spawned) imports this module again as
# __mp_main__, and must not start a front end of its own.
if __name__ == "__main__":
    main()
