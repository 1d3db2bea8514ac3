from dftplug.cli import main

main()
