import pytest

from tempdl.web.accept import prefers_json


@pytest.mark.parametrize(
    "accept",
    [
        "application/json",
        "APPLICATION/JSON",
        "Application/Json; charset=utf-8",
        "application/json, text/html;q=0.5",
        "text/html;q=0, application/json",
        "text/html;q=0.1, application/json;q=0.2",
        "application/json, */*",
        "application/json, */*;q=0.8",
        "application/*",
        "text/html;q=0, */*",
        "application/json;q=0.5",
    ],
)
def test_json_is_preferred(accept):
    assert prefers_json(accept) is True


@pytest.mark.parametrize(
    "accept",
    [
        "",
        "*/*",
        "text/html",
        "TEXT/HTML",
        "application/json, text/html",
        "text/html, application/json",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "application/json;q=0.5, text/html",
        "application/json;q=0, */*",
        "application/json;q=0",
        "image/png",
        "application/json;q=bogus, text/html;q=0.1",
        "garbage, ;;;, /",
    ],
)
def test_html_is_preferred(accept):
    assert prefers_json(accept) is False
