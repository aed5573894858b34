package controller

import (
	"net/url"
	"testing"
)

func TestParseLogOptions(t *testing.T) {
	for q, want := range map[string]logOptions{
		"":                               {tail: -1},
		"follow=true&tailLines=5":        {follow: true, tail: 5},
		"sinceSeconds=90&timestamps=1":   {tail: -1, since: "1m30s", timestamps: true},
		"sinceTime=2026-11-26T17:00:00Z": {tail: -1, since: "2026-11-26T17:00:00Z"},
		"limitBytes=100&tailLines=0":     {tail: 0, limitBytes: 100},
	} {
		v, _ := url.ParseQuery(q)
		got, err := parseLogOptions(v)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", q, got, err, want)
		}
	}
	for _, q := range []string{"previous=true", "tailLines=-1", "sinceSeconds=0", "sinceTime=yesterday", "follow=maybe"} {
		v, _ := url.ParseQuery(q)
		if got, err := parseLogOptions(v); err == nil {
			t.Errorf("%q accepted: %+v", q, got)
		}
	}
}
