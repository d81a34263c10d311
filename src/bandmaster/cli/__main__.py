from bandmaster.cli import main

main()
