package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
	"github.com/berth-dev/berth/internal/cli/format"
)

// eventTime is docker's fixed-width RFC 3339 with nanoseconds, so lines align.
const eventTime = "2006-01-02T15:04:05.000000000Z07:00"

func (c *CLI) eventsCommand() *cobra.Command {
	var (
		o       client.EventsListOptions
		filters []string
		tmpl    string
	)
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Get real time events from the server",
		Args:  c.noArgs(),
	}
	f := cmd.Flags()
	f.StringVar(&o.Since, "since", "", "Show all events created since timestamp")
	f.StringVar(&o.Until, "until", "", "Stream events until this timestamp")
	f.StringArrayVarP(&filters, "filter", "f", nil, "Filter output based on conditions provided")
	f.StringVar(&tmpl, "format", "", "Format output using a custom template")
	cmd.RunE = c.action(func(ctx context.Context, _ []string) error {
		var l *format.Lister
		if tmpl != "" {
			var err error
			if l, err = format.NewLister(c.Out, tmpl, "", nil); err != nil {
				return err
			}
		}
		fl, err := parseFilters(filters)
		if err != nil {
			return &StatusError{Code: 125, Message: err.Error() + ". See 'berth events --help'."}
		}
		o.Filters = fl
		api, err := c.Client()
		if err != nil {
			return err
		}
		res := api.Events(ctx, o)
		for {
			select {
			case m := <-res.Messages:
				if err := c.printEvent(l, m); err != nil {
					return err
				}
			case err := <-res.Err:
				if errors.Is(err, io.EOF) {
					return nil // --until reached
				}
				return c.explain(err)
			}
		}
	})
	return cmd
}

// printEvent writes one event at once (a stream is read by people and
// pipes as it happens): docker's line, or the user's template.
func (c *CLI) printEvent(l *format.Lister, m events.Message) error {
	if l != nil {
		if err := l.Row(m); err != nil {
			return err
		}
		return l.Flush()
	}
	t := time.Unix(m.Time, 0)
	if m.TimeNano != 0 {
		t = time.Unix(0, m.TimeNano)
	}
	line := fmt.Sprintf("%s %s %s %s", t.Format(eventTime), m.Type, m.Action, m.Actor.ID)
	if len(m.Actor.Attributes) > 0 {
		keys := make([]string, 0, len(m.Actor.Attributes))
		for k := range m.Actor.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys) // by key, as docker: "a" before "a.b"
		kv := make([]string, len(keys))
		for i, k := range keys {
			kv[i] = k + "=" + m.Actor.Attributes[k]
		}
		line += " (" + strings.Join(kv, ", ") + ")"
	}
	_, err := fmt.Fprintln(c.Out, line)
	return err
}
