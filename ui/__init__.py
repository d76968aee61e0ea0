"""Streamlit glue shared by the pages: settings, cached computations, the sidebar.

Everything that touches Streamlit lives here or in ``pages/``; the ``rshift``
package itself never imports Streamlit.
"""
