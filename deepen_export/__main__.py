from deepen_export.cli import main

main()
