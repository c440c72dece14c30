package progress

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/jsonstream"
)

// layer is one line of the live display.
type layer struct {
	status     string
	cur, total int64
	start      time.Time // when this phase's byte counts began
	startBytes int64
}

// live redraws one line per layer in place; other messages scroll above.
// Hand-rolled rather than a bar library: the daemon already sends the
// counts, so the work is formatting and cursor movement, and the binary
// stays free of another dependency.
type live struct {
	out    io.Writer
	width  int
	order  []string
	layers map[string]*layer
	drawn  int // bar lines on the screen, below the scrolled messages
	// frozen: every layer had ended when a message came, which was then
	// printed below them, as docker's CLI ends a pull ("Digest: …",
	// "Status: …" after the layers); nothing is redrawn after that.
	frozen bool
	last   time.Time
	now    func() time.Time
}

// Live renders the message stream for a terminal width columns wide: a
// line per layer with a bar, bytes, throughput and ETA, redrawn at most
// ten times a second.
func Live(out io.Writer, in io.Reader, width int) error {
	return liveWith(&live{out: out, width: width, layers: map[string]*layer{}, now: time.Now}, in)
}

func liveWith(l *live, in io.Reader) error {
	dec := json.NewDecoder(in)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err != nil {
			if !l.frozen {
				l.redraw()
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read progress: %w", err)
		}
		if m.Error != nil {
			l.redraw()
			return errors.New(m.Error.Message)
		}
		if m.Aux != nil {
			continue
		}
		if m.ID == "" {
			l.above(strings.TrimSuffix(m.Status+m.Stream, "\n"))
			continue
		}
		if (l.update(m) || l.now().Sub(l.last) >= 100*time.Millisecond) && !l.frozen {
			l.redraw()
		}
	}
}

// update records a layer message; it reports a change of status, which is
// drawn at once (byte counts wait for the next tick).
func (l *live) update(m jsonstream.Message) bool {
	ly, ok := l.layers[m.ID]
	if !ok {
		ly = &layer{}
		l.layers[m.ID] = ly
		l.order = append(l.order, m.ID)
	}
	changed := ly.status != m.Status
	if changed {
		ly.status, ly.cur, ly.total, ly.start, ly.startBytes = m.Status, 0, 0, l.now(), 0
	}
	if p := m.Progress; p != nil && (p.Current > 0 || p.Total > 0) {
		if ly.cur == 0 {
			ly.start, ly.startBytes = l.now(), p.Current
		}
		ly.cur, ly.total = p.Current, p.Total
	}
	return changed || !ok
}

// above prints a message above the bars, which are then drawn again below
// it; once every layer has ended, below them, for good.
func (l *live) above(msg string) {
	if l.frozen || (len(l.order) > 0 && l.allEnded()) {
		if !l.frozen {
			l.redraw() // the final state of every line
			l.frozen = true
		}
		fmt.Fprintln(l.out, msg)
		return
	}
	l.clear()
	fmt.Fprintln(l.out, msg)
	l.redraw()
}

// allEnded: no line will change any more.
func (l *live) allEnded() bool {
	for _, ly := range l.layers {
		switch {
		case ly.status == "Pull complete", ly.status == "Already exists", ly.status == "Pushed",
			ly.status == "Layer already exists", strings.HasPrefix(ly.status, "Mounted from"),
			strings.HasPrefix(ly.status, "Pulling from"), strings.HasPrefix(ly.status, "The push refers to"):
		default:
			return false
		}
	}
	return true
}

func (l *live) clear() {
	if l.drawn > 0 {
		fmt.Fprintf(l.out, "\033[%dA", l.drawn)
	}
	fmt.Fprint(l.out, "\r\033[J") // clear from the cursor to the end of the screen
	l.drawn = 0
}

func (l *live) redraw() {
	l.clear()
	for _, id := range l.order {
		fmt.Fprintln(l.out, l.line(id, l.layers[id]))
	}
	l.drawn = len(l.order)
	l.last = l.now()
}

// line is "id: Downloading [=====>      ] 12.3MB/40.1MB 5.2MB/s ETA 5s",
// cut to the terminal's width so a line never wraps (wrapping would break
// the cursor arithmetic).
func (l *live) line(id string, ly *layer) string {
	s := id + ": " + ly.status
	if ly.total > 0 {
		const barWidth = 25
		fill := int(float64(barWidth) * float64(ly.cur) / float64(ly.total))
		fill = min(max(fill, 0), barWidth)
		bar := strings.Repeat("=", fill)
		if fill < barWidth {
			bar += ">" + strings.Repeat(" ", barWidth-fill-1)
		}
		s += fmt.Sprintf(" [%s] %s/%s", bar, units.HumanSizeWithPrecision(float64(ly.cur), 3), units.HumanSizeWithPrecision(float64(ly.total), 3))
		if el := l.now().Sub(ly.start).Seconds(); el > 0.2 && ly.cur > ly.startBytes {
			speed := float64(ly.cur-ly.startBytes) / el
			eta := time.Duration(float64(ly.total-ly.cur) / speed * float64(time.Second)).Round(time.Second)
			s += fmt.Sprintf(" %s/s ETA %s", units.HumanSizeWithPrecision(speed, 3), eta)
		}
	}
	if l.width > 0 && len(s) >= l.width {
		s = s[:l.width-1]
	}
	return s
}
