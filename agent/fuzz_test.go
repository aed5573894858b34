package agent

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeRequests: no request body makes the agent's decoding and checking panic.
func FuzzDecodeRequests(f *testing.F) {
	f.Add([]byte(`{"bizName":"test","bizVersion":"1.0.0","bizUrl":"file:///a.wasm"}`))
	f.Add([]byte(`{"bizUrl":"oci://r/x@sha256:00","installStrategy":"uninstallThenInstall","async":true,"requestId":"1","envs":{"A":"b"}}`))
	f.Add([]byte(`{"bizList":[{"bizUrl":"x"}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var req InstallRequest
		if decode(body, &req) == nil {
			checkInstall(req)
		}
		var biz BizRequest
		decode(body, &biz)
		var batch struct {
			BizList []InstallRequest `json:"bizList"`
		}
		if json.Unmarshal(body, &batch) == nil {
			for _, r := range batch.BizList {
				checkInstall(r)
			}
		}
	})
}
