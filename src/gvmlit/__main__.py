from gvmlit.cli import main

main()
