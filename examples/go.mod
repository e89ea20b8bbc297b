module github.com/stepup-go/stepup/examples

go 1.26.6

require github.com/stepup-go/stepup v0.0.0

replace github.com/stepup-go/stepup => ../
