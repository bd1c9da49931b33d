from koncis_diag.cli.main import main

if __name__ == "__main__":
    main()
