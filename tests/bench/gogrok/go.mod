module sluice/bench/gogrok

go 1.22

require github.com/elastic/go-grok v0.3.1

require github.com/magefile/mage v1.15.0 // indirect
