package client

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// HijackedResponse is an attach or exec stream: the raw connection after
// the HTTP upgrade. Reader holds what the daemon sent right behind its
// answer; read through it, write to Conn.
type HijackedResponse struct {
	Conn   net.Conn
	Reader *bufio.Reader
}

// Close closes the connection.
func (h *HijackedResponse) Close() {
	if h.Conn != nil {
		_ = h.Conn.Close()
	}
}

// CloseWrite half-closes the connection, so the process in the container
// reads EOF on its stdin while its output keeps flowing.
func (h *HijackedResponse) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// hijack sends r on a connection of its own asking to upgrade to a raw
// stream (docker's "Upgrade: tcp"), and hands the connection over once
// the daemon answers 101. Cancelling ctx before then closes it.
func (c *Client) hijack(ctx context.Context, r request) (HijackedResponse, error) {
	req, err := c.newRequest(ctx, r)
	if err != nil {
		return HijackedResponse{}, err
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("User-Agent", "berth-cli")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "tcp")
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.network, c.addr)
	if err != nil {
		return HijackedResponse{}, &ConnectionError{err}
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetKeepAlive(true)
		_ = tc.SetKeepAlivePeriod(30 * time.Second)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	fail := func(err error) (HijackedResponse, error) {
		stop()
		_ = conn.Close()
		return HijackedResponse{}, err
	}
	if err := req.Write(conn); err != nil {
		return fail(c.hijackErr(ctx, err))
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fail(c.hijackErr(ctx, err))
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		if err := responseError(resp); err != nil {
			return fail(err)
		}
		_ = resp.Body.Close()
		return fail(fmt.Errorf("unable to upgrade to tcp, received %d", resp.StatusCode))
	}
	if !stop() {
		return fail(ctx.Err()) // cancelled while upgrading: already closed
	}
	return HijackedResponse{Conn: conn, Reader: br}, nil
}

func (c *Client) hijackErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &ConnectionError{err}
}
