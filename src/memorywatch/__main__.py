from memorywatch.console import main

main()
