"""One trimming step, the lottery methods and the lottery driver (``LotteryTrimmer``)."""
