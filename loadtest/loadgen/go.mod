module tessera/loadtest/loadgen

go 1.22
