# Adds the cargo step to nginx's objs/Makefile. Always release: Debian-style --with-debug
# builds would otherwise get an unoptimised module.

tfgate_objs_dir=$(cd "$NGX_OBJS" && pwd)

cat << END >> $NGX_MAKEFILE

$NGX_OBJS/ngx_http_tfgate_module.so: $tfgate_staticlib

$tfgate_staticlib: tfgate_cargo_build

tfgate_cargo_build:
	cd "$tfgate_workspace" && NGINX_BUILD_DIR="$tfgate_objs_dir" \\
		cargo rustc --release -p ngx-http-tfgate-module --no-default-features --features nginx --lib --crate-type staticlib

.PHONY: tfgate_cargo_build

END
