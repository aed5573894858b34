module github.com/kouple/kouple

go 1.26

require github.com/kouple/kouple/sdk v0.0.0

replace github.com/kouple/kouple/sdk => ./sdk
