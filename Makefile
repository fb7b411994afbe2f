# Two commands for a fresh machine: `make run` and `make test` (see README.md).
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3
# Debian packages the test suite starts or drives: a PostgreSQL server, the browser, the PHP
# CAS client (phpCAS, as Moodle uses it), the load generator of the benchmarks, xmlsec1 (the
# SAML signing fallback, compared in bench/saml_sso.py), Lasso (the SAML SP library of
# mod_auth_mellon, a second SP implementation in tests/interop/saml/lasso_sp.py).
SYSTEM_PACKAGES := postgresql chromium php-cli php-cas php-curl php-xml php-mbstring wrk xmlsec1 python3-lasso
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_ENV := SSO_DEMO=true

.PHONY: run test install install-dev system-packages lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

install-dev: $(BIN)/.installed-dev

## make run: install, migrate the SQLite database under ./var/, load the demo, serve :8000
run: $(BIN)/.installed
	mkdir -p var
	$(DEMO_ENV) $(BIN)/sso migrate
	$(DEMO_ENV) $(BIN)/sso demo
	$(DEMO_ENV) $(BIN)/sso serve --host 127.0.0.1 --port 8000

system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

## make test: system packages, Python dependencies, lint, import contracts, the whole suite
test: system-packages lint
	$(BIN)/pytest

bench: $(BIN)/.installed-dev system-packages
	$(BIN)/python bench/cas_validation.py
	$(BIN)/python bench/cas_issuance.py
	$(BIN)/python bench/password_login.py
	$(BIN)/python bench/saml_sso.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
