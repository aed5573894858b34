module example.com/oldyaml

go 1.26

require (
	github.com/kouple/kouple/sdk v0.0.0-00010101000000-000000000000
	go.yaml.in/yaml/v3 v3.0.4
)

replace github.com/kouple/kouple/sdk => ../../../../sdk
