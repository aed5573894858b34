package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kouple/kouple/agent"
	"github.com/kouple/kouple/observe"
)

func logsCmd() *cobra.Command {
	var addr target
	var req agent.LogsRequest
	var output string
	cmd := &cobra.Command{
		Use:   "logs [NAME]",
		Short: "Print a module's log lines (its own only), or the base's own with --base-logs; -f follows",
		Long: `Print the log records a base keeps for a module: its stdout and stderr lines and its structured (slog)
records, each with its version, stream, request id and trace id. The base keeps the latest records of each
module version in memory (and in files with kouple base --log-dir). -f keeps printing new records until
interrupted.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				name, version, _ := strings.Cut(args[0], ":")
				req.BizName = name
				if version != "" {
					req.BizVersion = version
				}
			}
			if req.BizName == "" && !req.Base {
				return fmt.Errorf("name a module (kouple logs NAME), or use --base-logs for the base's own logs")
			}
			switch output {
			case "text", "json":
			default:
				return fmt.Errorf("-o %q: use text or json", output)
			}
			print := func(r observe.Record) {
				if output == "json" {
					line, _ := json.Marshal(r)
					fmt.Fprintf(cmd.OutOrStdout(), "%s\n", line)
					return
				}
				fmt.Fprintln(cmd.OutOrStdout(), formatRecord(r))
			}
			c := newClient(addr)
			if !req.Follow {
				var recs []observe.Record
				if err := c.do(cmd.Context(), "logs", req, &recs); err != nil {
					return err
				}
				for _, r := range recs {
					print(r)
				}
				return nil
			}
			return c.follow(cmd, req, print)
		},
	}
	addBaseFlag(cmd, &addr)
	f := cmd.Flags()
	f.BoolVarP(&req.Follow, "follow", "f", false, "keep printing new records")
	f.StringVar(&req.Since, "since", "", "only records from this long ago (5m) or this RFC 3339 time on")
	f.StringVar(&req.BizVersion, "version", "", "only this version's records")
	f.BoolVar(&req.Base, "base-logs", false, "the base's own records instead of a module's")
	f.StringVarP(&output, "output", "o", "text", "text or json (one record per line)")
	return cmd
}

// follow streams the logs command's newline-delimited records until the command's context ends.
func (c *client) follow(cmd *cobra.Command, req agent.LogsRequest, print func(observe.Record)) error {
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, c.base+"/logs", bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := *c.http
	hc.Timeout = 0 // a follower waits as long as it is left running
	resp, err := hc.Do(hreq)
	if err != nil {
		if cmd.Context().Err() != nil {
			return nil
		}
		return fmt.Errorf("cannot reach the base's agent at %s: %w (is `kouple base` running? set --base or KOUPLE_BASE)", c.base, err)
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), agent.LogsContentType) {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var env agent.Envelope
		if json.Unmarshal(raw, &env) == nil && env.Message != "" {
			return fmt.Errorf("%s", env.Message)
		}
		return fmt.Errorf("agent %s answered %s: %.200s", c.base, resp.Status, raw)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var r observe.Record
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			print(r)
		}
	}
	if cmd.Context().Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("log stream: %w", err)
	}
	return nil
}

// formatRecord is a record as one line: TIME LEVEL module@version [request] message k=v ...
func formatRecord(r observe.Record) string {
	return r.Time.Local().Format("15:04:05.000") + " " + r.Line()
}
