module github.com/kouple/kouple

go 1.26

require (
	github.com/kouple/kouple/sdk v0.0.0-00010101000000-000000000000
	github.com/tetratelabs/wazero v1.12.0
	go.yaml.in/yaml/v3 v3.0.6
)

require golang.org/x/sys v0.44.0 // indirect

replace github.com/kouple/kouple/sdk => ./sdk
