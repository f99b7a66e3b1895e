from trialsim.launch import run

run()
