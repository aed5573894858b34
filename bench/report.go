package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

func (row Row) ratioText() string {
	if row.Ratio == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", row.Ratio)
}

func (row Row) targetText() string {
	if row.Target == "" {
		return "-"
	}
	if row.Status == "" {
		return row.Target
	}
	return row.Target + ": " + row.Status
}

func (rep *Report) suite() string {
	s := rep.Sizes
	name := "full suite"
	if rep.Quick {
		name = "quick suite (smaller N and counts than the full suite: density N=10 and 50, 1000 churn cycles)"
	}
	return fmt.Sprintf("%s: density N=%v, %d calls per payload, %s of load per serving point, %d churn cycles, %d guard trials; ran in %s",
		name, s.Density, s.Calls, s.ServeFor, s.Churn, s.GuardTrials, rep.Elapsed.Round(1e9))
}

// WriteText prints the table for a terminal.
func (rep *Report) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "comparison\tmetric\tKouple\tbaseline\tratio\ttarget")
	for _, row := range rep.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", row.Comparison, row.Metric, row.Kouple, row.Baseline, row.ratioText(), row.targetText())
	}
	tw.Flush()
	fmt.Fprintln(w, rep.suite())
	fmt.Fprintln(w, "ratio = Kouple ÷ baseline: below 1 is less time or memory than the baseline; for requests/s above 1 is more.")
	for _, f := range rep.Failures {
		fmt.Fprintln(w, "failed:", f)
	}
}

// Markdown is the table as markdown.
func (rep *Report) Markdown() string {
	var b strings.Builder
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	b.WriteString("| comparison | metric | Kouple | baseline | ratio | target |\n|---|---|---|---|---|---|\n")
	for _, row := range rep.Rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", esc(row.Comparison), esc(row.Metric), esc(row.Kouple), esc(row.Baseline), row.ratioText(), esc(row.targetText()))
	}
	fmt.Fprintf(&b, "\n%s. Ratio = Kouple ÷ baseline: below 1 is less time or memory than the baseline; for requests/s above 1 is more.\n", rep.suite())
	for _, f := range rep.Failures {
		fmt.Fprintf(&b, "\nFailed: %s\n", esc(f))
	}
	return b.String()
}

// WriteFiles writes table.md and chart.png to dir.
func (rep *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "table.md"), []byte(rep.Markdown()), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "chart.png"))
	if err != nil {
		return err
	}
	if err := rep.Chart(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
