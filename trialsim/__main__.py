try:
    from trialsim.launch import run
except KeyboardInterrupt:  # a Ctrl-C before the launcher installs its own handler (its first imports, on a busy machine)
    import os
    import sys

    os.write(2, b"\ntrialsim: interrupted while starting; nothing was done\n")
    sys.exit(130)

run()
