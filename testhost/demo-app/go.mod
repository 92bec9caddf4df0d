module canary-demo-app

go 1.26
