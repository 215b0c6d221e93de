package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// runHealthcheck is `finsync healthcheck`: GET /healthz of the daemon at
// FINSYNC_HTTP_ADDR, exit 0 when it answers 200. It is the image's
// HEALTHCHECK: the distroless image has no curl.
func runHealthcheck(ctx context.Context, a *app, args []string) error {
	if err := a.flags("healthcheck", summaryOf("healthcheck"), args, nil); err != nil {
		return err
	}
	c, err := a.config(ctx)
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(c.HTTPAddr) // Validate checked it
	if host == "" || net.ParseIP(host).IsUnspecified() {
		host = "127.0.0.1" // the daemon listens on every interface: ask locally
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("the daemon at %s does not answer: %w", c.HTTPAddr, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the daemon at %s answers /healthz with %s", c.HTTPAddr, resp.Status)
	}
	fmt.Fprintln(a.stdout, "ok")
	return nil
}
