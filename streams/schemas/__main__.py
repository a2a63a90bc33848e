from streams.schemas import main

main()
