// Compiled floors for bench/relay_floors.py: what a relay, and an app, cost when they are not Python.
//
// With COVE_BENCH_UPSTREAM (tcp:HOST:PORT or unix:PATH) it does what bench/bare_relay.py does and
// nothing more: read the body, POST it to the container's /invoke over kept-alive connections, and
// answer with the container's status and body. No token, no deployment, no scheduler, no metrics.
// With COVE_BENCH_UPSTREAM=self it answers the JSON itself, as bench/bare_uvicorn.py does.
// Go's standard library only, so it builds offline:
//
//	go build -o /tmp/go-relay ./bench/floors/go_relay && COVE_BENCH_UPSTREAM=... /tmp/go-relay PORT
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
)

func main() {
	upstream := os.Getenv("COVE_BENCH_UPSTREAM")
	if upstream == "self" && len(os.Args) == 2 {
		serve(os.Args[1], answerItself)
	}
	network, address, found := strings.Cut(upstream, ":")
	if !found || (network != "tcp" && network != "unix") || len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: COVE_BENCH_UPSTREAM=tcp:HOST:PORT|unix:PATH go-relay PORT")
		os.Exit(2)
	}
	var dialer net.Dialer
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, address)
		},
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		DisableCompression:  true,
	}}
	relay := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if len(body) == 0 {
			body = []byte("{}")
		}
		request, _ := http.NewRequest(http.MethodPost, "http://c/invoke", bytes.NewReader(body))
		request.Header.Set("Content-Type", "application/json")
		request.Header.Set("X-Cove-Call-Id", "call-bench")
		answer, err := client.Do(request)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		payload, err := io.ReadAll(answer.Body)
		answer.Body.Close()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(answer.StatusCode)
		w.Write(payload)
	}
	serve(os.Args[1], relay)
}

// answerItself answers {"x": <the body's x>} as the bare uvicorn app does.
func answerItself(w http.ResponseWriter, r *http.Request) {
	var request struct {
		X any `json:"x"`
	}
	body, err := io.ReadAll(r.Body)
	if err == nil && len(body) > 0 {
		err = json.Unmarshal(body, &request)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	payload, _ := json.Marshal(map[string]any{"x": request.X})
	w.Header().Set("Content-Type", "application/json")
	w.Write(payload)
}

func serve(port string, handler http.HandlerFunc) {
	if err := http.ListenAndServe("127.0.0.1:"+port, handler); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}
