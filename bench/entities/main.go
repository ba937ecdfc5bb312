// Command entities measures how long a control plane takes to create and then fully list a large
// configuration through the Kong Admin API of one runtime group: N services, N routes (one per
// service) and N consumers, created with bounded concurrency, then listed with size=1000 pages.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	api := flag.String("api", "http://127.0.0.1:8080", "control plane API URL")
	token := flag.String("token", os.Getenv("GANTRY_TOKEN"), "bearer token (or GANTRY_TOKEN)")
	group := flag.String("group", "", "runtime group id (default: the default group)")
	n := flag.Int("n", 10000, "how many services, routes and consumers to create")
	workers := flag.Int("concurrency", 8, "concurrent requests while creating")
	label := flag.String("label", "", "label printed with the results (e.g. the database)")
	flag.Parse()
	c := &client{base: *api, token: *token, http: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *workers}}}
	ctx := context.Background()
	if *group == "" {
		var list struct {
			Data []struct {
				ID        string `json:"id"`
				IsDefault bool   `json:"is_default"`
			} `json:"data"`
		}
		if err := c.do(ctx, "GET", "/v2/runtime-groups?filter[name][eq]=default", nil, &list); err != nil || len(list.Data) == 0 {
			fail("find the default group: %v", err)
		}
		*group = list.Data[0].ID
	}
	prefix := "/v2/runtime-groups/" + *group + "/core-entities"

	start := time.Now()
	run(*n, *workers, func(i int) error {
		return c.do(ctx, "PUT", fmt.Sprintf("%s/services/svc-%d", prefix, i), map[string]any{"host": fmt.Sprintf("svc-%d.internal", i), "port": 8080, "path": "/"}, nil)
	})
	services := time.Since(start)
	t1 := time.Now()
	run(*n, *workers, func(i int) error {
		return c.do(ctx, "POST", fmt.Sprintf("%s/services/svc-%d/routes", prefix, i), map[string]any{"name": fmt.Sprintf("route-%d", i), "paths": []string{fmt.Sprintf("/svc-%d", i)}}, nil)
	})
	routes := time.Since(t1)
	t2 := time.Now()
	run(*n, *workers, func(i int) error {
		return c.do(ctx, "POST", prefix+"/consumers", map[string]any{"username": fmt.Sprintf("user-%d", i), "custom_id": fmt.Sprintf("c-%d", i)}, nil)
	})
	consumers := time.Since(t2)
	create := time.Since(start)

	t3 := time.Now()
	counts := map[string]int{}
	for _, kind := range []string{"services", "routes", "consumers"} {
		counts[kind] = c.listAll(ctx, prefix+"/"+kind)
	}
	list := time.Since(t3)
	for kind, got := range counts {
		if got != *n {
			fail("listed %d %s, want %d", got, kind, *n)
		}
	}
	total := 3 * *n
	fmt.Printf("%-10s create %d entities: %8.2fs (%6.0f/s; services %.2fs, routes %.2fs, consumers %.2fs)  list all: %6.2fs (%6.0f/s)\n",
		*label, total, create.Seconds(), float64(total)/create.Seconds(), services.Seconds(), routes.Seconds(), consumers.Seconds(), list.Seconds(), float64(total)/list.Seconds())
}

func run(n, workers int, fn func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					fail("request %d: %v", i, err)
				}
			}
		}()
	}
	wg.Wait()
}

type client struct {
	base, token string
	http        *http.Client
}

func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// listAll pages through a Kong collection with size=1000, as decK does, and counts the entities.
func (c *client) listAll(ctx context.Context, path string) int {
	total := 0
	next := path + "?size=1000"
	for next != "" {
		var page struct {
			Data   []json.RawMessage `json:"data"`
			Offset string            `json:"offset"`
		}
		if err := c.do(ctx, "GET", next, nil, &page); err != nil {
			fail("list %s: %v", path, err)
		}
		total += len(page.Data)
		next = ""
		if page.Offset != "" {
			next = path + "?size=1000&offset=" + page.Offset
		}
	}
	return total
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "entities: "+format+"\n", args...)
	os.Exit(1)
}
