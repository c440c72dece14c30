package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sync"
)

// Filters is docker's filter set: term → values (filters={"label":{"a=b":true}}).
type Filters map[string]map[string]bool

// Add adds values under term and returns f.
func (f Filters) Add(term string, values ...string) Filters {
	if f[term] == nil {
		f[term] = map[string]bool{}
	}
	for _, v := range values {
		f[term][v] = true
	}
	return f
}

// Clone is a deep copy of f.
func (f Filters) Clone() Filters {
	out := make(Filters, len(f))
	for term, values := range f {
		out[term] = make(map[string]bool, len(values))
		for v, on := range values {
			out[term][v] = on
		}
	}
	return out
}

// set puts f in q as the "filters" parameter, when there are any.
func (f Filters) set(q url.Values) {
	if len(f) == 0 {
		return
	}
	b, err := json.Marshal(f)
	if err == nil {
		q.Set("filters", string(b))
	}
}

// call sends r and decodes a JSON answer into out (nil: the answer is
// dropped).
func (c *Client) call(ctx context.Context, r request, out any) error {
	resp, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	defer drain(resp)
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// callRaw is call that also returns the answer's bytes (inspect's raw JSON,
// which templates fall back on).
func (c *Client) callRaw(ctx context.Context, r request, out any) (json.RawMessage, error) {
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return b, json.Unmarshal(b, out)
}

// prune posts to a prune endpoint with filters and decodes its report.
func (c *Client) prune(ctx context.Context, path string, f Filters, report any) error {
	q := url.Values{}
	f.set(q)
	return c.call(ctx, post(path, q, nil), report)
}

// stream sends r and returns the answer's body, closed when ctx ends.
func (c *Client) stream(ctx context.Context, r request) (io.ReadCloser, error) {
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	return newCtxBody(ctx, resp.Body), nil
}

// ctxBody is a streamed body that is closed when its context ends, so a
// reader blocked on it returns.
type ctxBody struct {
	io.ReadCloser
	stop func() bool
	once sync.Once
}

func newCtxBody(ctx context.Context, rc io.ReadCloser) io.ReadCloser {
	b := &ctxBody{ReadCloser: rc}
	b.stop = context.AfterFunc(ctx, func() { _ = b.Close() })
	return b
}

func (b *ctxBody) Close() error {
	var err error
	b.once.Do(func() {
		b.stop()
		err = b.ReadCloser.Close()
	})
	return err
}

func get(path string, q url.Values) request {
	return request{method: http.MethodGet, path: path, query: q}
}

func post(path string, q url.Values, body any) request {
	return request{method: http.MethodPost, path: path, query: q, jsonObj: body}
}

func del(path string, q url.Values) request {
	return request{method: http.MethodDelete, path: path, query: q}
}

// flag sets q[key]=value when on.
func flag(q url.Values, on bool, key, value string) {
	if on {
		q.Set(key, value)
	}
}
