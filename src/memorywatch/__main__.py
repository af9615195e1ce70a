from memorywatch.cli import main

main()
