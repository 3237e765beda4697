package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// progressBar draws one line on a terminal — a phase, a bar and counts —
// redrawn in place at most every progressRedraw. On anything but a
// terminal (a file, a pipe, CI logs) it draws nothing: the log lines at
// the start and end say what happened.
type progressBar struct {
	w     io.Writer // nil: not a terminal
	phase string
	unit  string
	last  time.Time
	drawn bool
	cur   int64 // the last count set, and its total
	total int64
}

const (
	progressRedraw = 200 * time.Millisecond
	barWidth       = 30
)

// newProgressBar draws on w only when it is a terminal.
func newProgressBar(w io.Writer) *progressBar {
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		return &progressBar{w: w}
	}
	return &progressBar{}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// start begins a phase counted in unit.
func (p *progressBar) start(phase, unit string) {
	p.phase, p.unit, p.last = phase, unit, time.Time{}
}

// set shows done of total (total <= 0: unknown).
func (p *progressBar) set(done, total int64) {
	if p.w == nil {
		return
	}
	p.cur, p.total = done, total
	now := time.Now()
	if now.Sub(p.last) < progressRedraw && (total <= 0 || done < total) {
		return
	}
	p.last = now
	p.draw()
}

func (p *progressBar) draw() {
	done, total := p.cur, p.total
	if total <= 0 { // unknown: a count alone
		fmt.Fprintf(p.w, "\r%-18s %d %s\x1b[K", p.phase, done, p.unit)
		p.drawn = true
		return
	}
	frac := min(1, float64(done)/float64(total))
	fill := int(frac * barWidth)
	fmt.Fprintf(p.w, "\r%-18s [%s%s] %5.1f%%  %d/%d %s\x1b[K", p.phase,
		strings.Repeat("=", fill), strings.Repeat(" ", barWidth-fill), 100*frac, done, total, p.unit)
	p.drawn = true
}

// done ends the line, so that what is printed next starts on its own.
func (p *progressBar) done() {
	if p.w != nil && p.drawn {
		p.draw() // the last count, which set may have skipped
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
