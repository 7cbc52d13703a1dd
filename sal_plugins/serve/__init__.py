"""``sal serve``: an OpenAI-compatible endpoint that searches (``pip install 'sal-plugins[serve]'``).

::

    from sal_plugins.serve import ServeSettings, create_app

    app = create_app(ServeSettings(upstream_url="http://localhost:8000/v1", upstream_model="m"))
    # uvicorn.run(app)   or   sal serve --upstream http://localhost:8000/v1 --upstream-model m
"""

from sal_plugins.serve._access import ACCESS_LOGGER, log_access_to
from sal_plugins.serve._app import ServeSettings, create_app

__all__ = ["ACCESS_LOGGER", "ServeSettings", "create_app", "log_access_to"]
