// Command httpload drives the JSON gateway (/v3/kv/put or /v3/kv/range)
// the way curl-based tools and HTTP clients use it: each client holds one
// keep-alive HTTP/1.1 connection and sends JSON requests one after
// another. It prints the totals in the format of etcd's benchmark tool
// (Requests/sec, Average, 99% in), so scripts/bench.sh parses both alike.
//
//	httpload -endpoint 127.0.0.1:2379 -op put -clients 100 -total 20000
package main

import (
	"bytes"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "client URL host:port")
	op := flag.String("op", "put", "put (random keys over -key-space) or range (one key, linearizable)")
	clients := flag.Int("clients", 100, "concurrent clients, one connection each")
	total := flag.Int("total", 20000, "requests in all")
	keySpace := flag.Int("key-space", 100000, "keys the puts spread over")
	valSize := flag.Int("val-size", 256, "value bytes of a put")
	key := flag.String("key", "range-key", "the key a range reads")
	flag.Parse()

	url := fmt.Sprintf("http://%s/v3/kv/%s", *endpoint, *op)
	val := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("v"), *valSize))
	body := func(r *rand.Rand) []byte {
		if *op == "range" {
			return []byte(fmt.Sprintf(`{"key":%q}`, base64.StdEncoding.EncodeToString([]byte(*key))))
		}
		k := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%08d", r.IntN(*keySpace)))
		return []byte(fmt.Sprintf(`{"key":%q,"value":%q}`, k, val))
	}
	tr := &http.Transport{MaxIdleConnsPerHost: *clients, MaxConnsPerHost: *clients}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	var next, failures atomic.Int64
	lat := make([][]time.Duration, *clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 1))
			for next.Add(1) <= int64(*total) {
				t := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(body(r)))
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("HTTP %d", resp.StatusCode)
					}
				}
				if err != nil {
					if failures.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "first failure:", err)
					}
					continue
				}
				lat[c] = append(lat[c], time.Since(t))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	if len(all) == 0 {
		fmt.Fprintln(os.Stderr, "no request succeeded")
		os.Exit(1)
	}
	slices.Sort(all)
	var sum time.Duration
	for _, d := range all {
		sum += d
	}
	fmt.Printf("\nSummary:\n  Total:\t%.4f secs.\n  Average:\t%.4f secs.\n  Requests/sec:\t%.4f\n\n",
		elapsed.Seconds(), (sum / time.Duration(len(all))).Seconds(), float64(len(all))/elapsed.Seconds())
	fmt.Printf("Latency distribution:\n  50%% in %.4f secs.\n  99%% in %.4f secs.\n",
		all[len(all)/2].Seconds(), all[len(all)*99/100].Seconds())
	if n := failures.Load(); n > 0 {
		fmt.Printf("\nError distribution:\n  [%d]\trequest failed\n", n)
	}
}
