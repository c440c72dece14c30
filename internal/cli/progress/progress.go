// Package progress renders the daemon's pull/push message stream (docker's
// JSON messages). This first version prints docker's plain form, the one
// docker uses when stdout is not a terminal: one line per status change, no
// byte counts. Live per-layer bars on a terminal come next.
package progress

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/moby/moby/api/types/jsonstream"
)

// Plain copies the messages in as status lines to out, and returns the
// first error message the daemon sent (the pull or push failed).
func Plain(out io.Writer, in io.Reader) error {
	dec := json.NewDecoder(in)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read progress: %w", err)
		}
		if m.Error != nil {
			return errors.New(m.Error.Message)
		}
		// Byte counts are for live bars; a log gets the status changes only.
		if m.Aux != nil || (m.Progress != nil && (m.Progress.Current > 0 || m.Progress.Total > 0)) {
			continue
		}
		if m.ID != "" {
			fmt.Fprintf(out, "%s: ", m.ID)
		}
		if m.Stream != "" {
			fmt.Fprint(out, m.Stream)
			continue
		}
		fmt.Fprintln(out, m.Status)
	}
}
