package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
)

// eventFilter is /events' filters: every key given must match (values of
// one key are alternatives), docker's rule.
type eventFilter map[string][]string

// eventFilterKeys are the keys berth filters on; docker ignores other
// keys (it neither refuses nor applies them), and so does berth.
var eventFilterKeys = map[string]bool{
	"type": true, "event": true, "container": true, "image": true, "label": true, "scope": true,
	"volume": true, "network": true,
}

func (f eventFilter) match(m events.Message) bool {
	for k, vals := range f {
		if !eventFilterKeys[k] {
			continue
		}
		ok := false
		for _, v := range vals {
			switch k {
			case "type":
				ok = string(m.Type) == v
			case "event":
				// "exec_start" matches "exec_start: sh -c ..."
				a := string(m.Action)
				ok = a == v || strings.HasPrefix(a, v+":")
			case "container":
				ok = m.Type == events.ContainerEventType &&
					(m.Actor.ID == v || strings.HasPrefix(m.Actor.ID, v) || m.Actor.Attributes["name"] == v)
			case "image":
				ok = m.Actor.Attributes["image"] == v || (m.Type == events.ImageEventType && (m.Actor.ID == v || m.Actor.Attributes["name"] == v))
			case "label":
				lk, lv, hasV := strings.Cut(v, "=")
				got, present := m.Actor.Attributes[lk]
				ok = present && (!hasV || got == lv)
			case "scope":
				ok = m.Scope == v
			case "volume":
				ok = m.Type == events.VolumeEventType && m.Actor.ID == v
			case "network":
				ok = m.Type == events.NetworkEventType &&
					(strings.HasPrefix(m.Actor.ID, v) || m.Actor.Attributes["name"] == v)
			}
			if ok {
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// eventTime reads since/until: unix seconds with an optional fraction
// (what the CLI sends, durations already turned into times) or RFC 3339.
func eventTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := parseUnixTime(v); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, badParam("invalid time %q", v)
	}
	return t, nil
}

// systemEvents streams events as JSON lines: the backlog from since, then
// live ones until until (or the client leaves).
func (s *Server) systemEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, err := eventTime(q.Get("since"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	until, err := eventTime(q.Get("until"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	raw, err := listFilters(q.Get("filters"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	f := eventFilter(raw)
	ctx := r.Context()
	past, live := s.eng.Events(ctx, since)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	send := func(m events.Message) bool {
		if !until.IsZero() && m.TimeNano > until.UnixNano() {
			return false
		}
		if f.match(m) {
			if enc.Encode(m) != nil {
				return false
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		return true
	}
	for _, m := range past {
		if !send(m) {
			return
		}
	}
	if flusher != nil {
		flusher.Flush()
	}
	var end <-chan time.Time
	if !until.IsZero() {
		d := time.Until(until)
		if d <= 0 {
			return
		}
		t := time.NewTimer(d)
		defer t.Stop()
		end = t.C
	}
	for {
		select {
		case m := <-live:
			if !send(m) {
				return
			}
		case <-end:
			return
		case <-ctx.Done():
			return
		}
	}
}
