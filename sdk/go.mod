module github.com/kouple/kouple/sdk

go 1.26
