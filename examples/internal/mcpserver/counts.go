package mcpserver

import (
	"net/http"
	"sync"
)

// Counts are what an MCP server answered, by kind.
type Counts struct {
	// Requests counts the HTTP requests to the MCP endpoint.
	Requests int
	// Streams counts the GET requests that opened a standalone SSE stream
	// (status 200).
	Streams int
	// Unauthorized and Forbidden count the 401 and 403 answers.
	Unauthorized, Forbidden int
	// ToolCalls counts tools/call requests that reached a tool.
	ToolCalls int
}

type counts struct {
	mu sync.Mutex
	c  Counts
}

func (c *counts) request(r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.c.Requests++
}

func (c *counts) status(method string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case status == http.StatusUnauthorized:
		c.c.Unauthorized++
	case status == http.StatusForbidden:
		c.c.Forbidden++
	case status == http.StatusOK && method == http.MethodGet:
		c.c.Streams++
	}
}

func (c *counts) toolCall() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.c.ToolCalls++
}

func (c *counts) get() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c
}

// countingWriter counts the status of a response.
type countingWriter struct {
	http.ResponseWriter
	counts *counts
	method string
	wrote  bool
}

func (w *countingWriter) WriteHeader(status int) {
	if !w.wrote {
		w.wrote = true
		w.counts.status(w.method, status)
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *countingWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (SSE streams).
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
