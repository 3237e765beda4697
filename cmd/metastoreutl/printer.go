package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"
)

// result is one command's answer in every --write-out format, as
// etcdutl's printers lay out a DBStatus or a HashKV.
type result struct {
	header []string // table: the column names (upper-cased when drawn)
	row    []string // simple: joined with ", "; table: the one row
	json   any      // json: marshalled as it is
	fields []field  // fields: one `"Name" : value` line each
}

type field struct {
	name  string
	value any
}

// checkFormat refuses a format etcdutl does not know, before any work
// (etcdutl's initPrinterFromCmd). protobuf passes here: etcdutl refuses
// it only when printing, after the work.
func checkFormat(format string) error {
	switch format {
	case "simple", "table", "json", "fields", "protobuf":
		return nil
	}
	return errors.New("unsupported output format")
}

// print writes r in the command line's --write-out format and returns
// the exit code.
func (c *cli) print(r result) int {
	w := c.stdout
	switch c.g.writeOut {
	case "simple":
		fmt.Fprintln(w, strings.Join(r.row, ", "))
	case "table":
		printTable(w, r.header, [][]string{r.row})
	case "json":
		b, err := json.Marshal(r.json)
		if err != nil {
			fmt.Fprintln(c.stderr, err)
			return exitSuccess // etcdutl's printJSON does not fail the command
		}
		fmt.Fprintln(w, string(b))
	case "fields":
		for _, f := range r.fields {
			fmt.Fprintln(w, `"`+f.name+`" :`, f.value)
		}
	case "protobuf":
		return c.fail(exitBadFeature, errors.New("protobuf not supported as output format"))
	default:
		return c.fail(exitBadFeature, checkFormat(c.g.writeOut))
	}
	return exitSuccess
}

// printTable draws the table etcdutl's tablewriter draws: upper-case
// centred headers, right-aligned cells, box-drawing borders.
func printTable(w io.Writer, hdr []string, rows [][]string) {
	width := make([]int, len(hdr))
	for i, h := range hdr {
		width[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	line := func(l, m, r string) {
		var b strings.Builder
		b.WriteString(l)
		for i, n := range width {
			if i > 0 {
				b.WriteString(m)
			}
			b.WriteString(strings.Repeat("─", n+2))
		}
		b.WriteString(r)
		fmt.Fprintln(w, b.String())
	}
	cells := func(cs []string, align func(s string, n int) string) {
		var b strings.Builder
		b.WriteString("│")
		for i, c := range cs {
			b.WriteString(" " + align(c, width[i]) + " │")
		}
		fmt.Fprintln(w, b.String())
	}
	center := func(s string, n int) string {
		pad := n - utf8.RuneCountInString(s)
		return strings.Repeat(" ", pad/2) + s + strings.Repeat(" ", pad-pad/2)
	}
	right := func(s string, n int) string { return strings.Repeat(" ", n-utf8.RuneCountInString(s)) + s }
	upper := make([]string, len(hdr))
	for i, h := range hdr {
		upper[i] = strings.ToUpper(h)
	}
	line("┌", "┬", "┐")
	cells(upper, center)
	line("├", "┼", "┤")
	for _, r := range rows {
		cells(r, right)
	}
	line("└", "┴", "┘")
}

// humanBytes formats n in SI units as go-humanize's Bytes does ("20 kB").
func humanBytes(n uint64) string {
	if n < 10 {
		return fmt.Sprintf("%d B", n)
	}
	sizes := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	e := math.Floor(math.Log(float64(n)) / math.Log(1000))
	val := math.Floor(float64(n)/math.Pow(1000, e)*10+0.5) / 10
	f := "%.0f %s"
	if val < 10 {
		f = "%.1f %s"
	}
	return fmt.Sprintf(f, val, sizes[int(e)])
}
