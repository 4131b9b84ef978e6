module github.com/zbroker/zbroker

go 1.26.8
