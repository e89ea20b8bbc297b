package filestore_test

import (
	"testing"

	"github.com/stepup-go/stepup/filestore"
	"github.com/stepup-go/stepup/internal/storetest"
)

// The quiet path through the file store; UpdateSave writes a temporary
// file, flushes it, renames it and flushes the folder.
func BenchmarkStore(b *testing.B) {
	storetest.Benchmarks(b, newStore(b, filestore.WithDir(privateDir(b))))
}
