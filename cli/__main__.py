from pinembed.cli.main import main

main()
