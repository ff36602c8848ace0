from expagent.cli import main

main()
