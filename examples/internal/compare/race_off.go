//go:build !race

package compare

// raceDetector says whether the race detector is on.
const raceDetector = false
