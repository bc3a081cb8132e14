"""The stage graph of `nemotron <family> pipe`: pipe configs, fingerprints, and which stages run or are done."""
