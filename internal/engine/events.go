package engine

import (
	"context"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
)

// eventBacklog is how many past events /events?since= can replay; docker
// keeps a similar in-memory window (events are not persisted).
const eventBacklog = 1024

// eventHub fans events out to subscribers and keeps a short backlog.
type eventHub struct {
	mu      sync.Mutex
	backlog []events.Message
	subs    map[chan events.Message]struct{}
}

func newEventHub() *eventHub {
	return &eventHub{subs: map[chan events.Message]struct{}{}}
}

// Emit records an event of type typ ("container", "image"...) about id,
// with attributes; containers' events also carry their name and image.
func (e *Engine) Emit(typ, action, id string, attrs map[string]string) {
	if attrs == nil {
		attrs = map[string]string{}
	}
	now := time.Now()
	m := events.Message{
		Type: events.Type(typ), Action: events.Action(action), Scope: "local",
		Actor: events.Actor{ID: id, Attributes: attrs},
		Time:  now.Unix(), TimeNano: now.UnixNano(),
	}
	h := e.events
	h.mu.Lock()
	defer h.mu.Unlock()
	h.backlog = append(h.backlog, m)
	if len(h.backlog) > eventBacklog {
		h.backlog = h.backlog[len(h.backlog)-eventBacklog:]
	}
	for ch := range h.subs {
		select {
		case ch <- m:
		default: // a subscriber this far behind loses events rather than stalling the engine
		}
	}
}

// emitContainer emits a container event with docker's attributes: name,
// image and labels.
func (e *Engine) emitContainer(c *Container, action string, extra map[string]string) {
	attrs := map[string]string{"name": trimSlash(c.Name), "image": c.Config.Image}
	for k, v := range c.Config.Labels {
		attrs[k] = v
	}
	for k, v := range extra {
		attrs[k] = v
	}
	e.Emit("container", action, c.ID, attrs)
}

func trimSlash(s string) string {
	if len(s) > 0 && s[0] == '/' {
		return s[1:]
	}
	return s
}

// Events returns the backlog since the given time and a channel of the
// events that follow, until ctx ends.
func (e *Engine) Events(ctx context.Context, since time.Time) ([]events.Message, <-chan events.Message) {
	h := e.events
	ch := make(chan events.Message, 256)
	h.mu.Lock()
	var past []events.Message
	if !since.IsZero() {
		for _, m := range h.backlog {
			if m.TimeNano >= since.UnixNano() {
				past = append(past, m)
			}
		}
	}
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	go func() {
		<-ctx.Done()
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}()
	return past, ch
}
