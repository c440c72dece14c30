package api

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/moby/moby/api/types/jsonstream"

	"github.com/berth-dev/berth/internal/distribution"
)

// message is one line of docker's JSON progress stream. The plain "error"
// field is still what older clients read; newer ones read errorDetail.
type message struct {
	jsonstream.Message
	ProgressMessage string `json:"progress,omitempty"`
	ErrorMessage    string `json:"error,omitempty"`
}

// jsonStream writes progress lines as they come, flushing each, so that
// `docker pull` renders them live. Headers go out with the first line:
// an error before any line is still answered with its proper status.
type jsonStream struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	enc     *json.Encoder
	started bool
}

func newJSONStream(w http.ResponseWriter) *jsonStream {
	return &jsonStream{w: w, enc: json.NewEncoder(w)}
}

func (j *jsonStream) write(m message) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.started {
		j.w.Header().Set("Content-Type", "application/json")
		j.w.WriteHeader(http.StatusOK)
		j.started = true
	}
	_ = j.enc.Encode(m)
	if f, ok := j.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (j *jsonStream) status(id, status string) {
	j.write(message{Message: jsonstream.Message{ID: id, Status: status}})
}

func (j *jsonStream) stream(text string) {
	j.write(message{Message: jsonstream.Message{Stream: text}})
}

// fail ends the stream with err: as a status and message when nothing was
// written yet, else as an error line (the status is already 200).
func (j *jsonStream) fail(s *Server, err error) {
	j.mu.Lock()
	started := j.started
	j.mu.Unlock()
	if !started {
		s.writeErr(j.w, err)
		return
	}
	msg := err.Error()
	j.write(message{Message: jsonstream.Message{Error: &jsonstream.Error{Message: msg}}, ErrorMessage: msg})
}

// progress turns distribution's events into docker's wording: operation
// events carry their subject in the status text, layer events their short
// digest as the ID and byte counts as progressDetail.
func (j *jsonStream) progress(p distribution.Progress) {
	m := message{Message: jsonstream.Message{ID: p.ID, Status: p.Status}}
	switch p.Status {
	case distribution.StatusPullingFrom, distribution.StatusMounted:
		m.Status = p.Status + " " + p.Detail
	case distribution.StatusPushingRepository:
		m.Status = p.Status + " [" + p.Detail + "]"
	case distribution.StatusDownloadedNewer, distribution.StatusImageUpToDate:
		m.Status = "Status: " + p.Status + " " + p.Detail
	case distribution.StatusDigest:
		if p.ID != "" { // a push: "<tag>: digest: <d> size: <n>", as docker ends it
			m.ID = ""
			m.Status = p.ID + ": digest: " + p.Detail + " size: " + itoa(p.Total)
		} else {
			m.Status = "Digest: " + p.Detail
		}
	case distribution.StatusDownloading, distribution.StatusExtracting, distribution.StatusPushing:
		m.Progress = &jsonstream.Progress{Current: p.Current, Total: p.Total}
	}
	j.write(m)
}
