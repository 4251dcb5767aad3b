"""The experiment runner: lotteries over replicates x methods x criteria, resumable."""
