package command

import (
	"context"
	"strings"

	"github.com/berth-dev/berth/internal/cli/client"
	"github.com/berth-dev/berth/internal/cli/format"
)

// lsVerb is what `network ls` and `volume ls` differ in.
type lsVerb struct {
	help      string // "network ls": named in a bad filter's error
	quietTmpl string // the one column -q prints
	table     string
	header    map[string]string
	// rows asks the daemon and returns the rows in docker's order.
	rows func(ctx context.Context, api *client.Client, f client.Filters) ([]any, error)
}

// runLs is the body `network ls` and `volume ls` share: -q picks one column
// unless --format names another, the template is checked before the daemon
// is asked, and a bad filter is docker's status 125.
func (c *CLI) runLs(ctx context.Context, v lsVerb, quiet bool, tmpl string, filters []string) error {
	if quiet && (tmpl == "" || strings.HasPrefix(tmpl, format.TableKey)) {
		tmpl = v.quietTmpl
	}
	l, err := format.NewLister(c.Out, tmpl, v.table, v.header)
	if err != nil {
		return err
	}
	fl, err := parseFilters(filters)
	if err != nil {
		return &StatusError{Code: 125, Message: err.Error() + ". See 'berth " + v.help + " --help'."}
	}
	api, err := c.Client()
	if err != nil {
		return err
	}
	rows, err := v.rows(ctx, api, fl)
	if err != nil {
		return c.explain(err)
	}
	for _, r := range rows {
		if err := l.Row(r); err != nil {
			return err
		}
	}
	return l.Flush()
}
