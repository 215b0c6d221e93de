module github.com/finsync/finsync

go 1.26.8
