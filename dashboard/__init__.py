"""gluelab dashboard: Streamlit pages and Plotly figures reading the results store."""
