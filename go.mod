module github.com/zbroker/zbroker

go 1.24
